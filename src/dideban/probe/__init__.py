"""dideban.probe"""
