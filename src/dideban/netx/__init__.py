"""dideban.netx"""
