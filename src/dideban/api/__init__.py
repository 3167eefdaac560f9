"""dideban.api"""
