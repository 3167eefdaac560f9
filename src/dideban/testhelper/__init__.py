"""dideban.testhelper"""
