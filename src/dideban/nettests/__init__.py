"""dideban.nettests"""
