"""dideban.web"""
