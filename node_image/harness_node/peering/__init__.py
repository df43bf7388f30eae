"""peering"""
