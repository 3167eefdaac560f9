"""dideban.pipeline"""
