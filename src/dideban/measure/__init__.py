"""dideban.measure"""
