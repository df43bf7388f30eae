"""addr"""
