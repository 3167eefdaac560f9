"""dideban.lab"""
