"""dideban.model"""
