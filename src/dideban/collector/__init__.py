"""dideban.collector"""
