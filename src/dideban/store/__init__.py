"""dideban.store"""
