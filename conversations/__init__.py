"""The data layer: typed models, the MongoDB store and the embedded MongoDB-compatible server.

Nothing outside this package talks to MongoDB.
"""
