"""The data layer: one client of the store (MongoDB, or the embedded MongoDB-compatible server),
repositories per aggregate over it (``repositories.Repositories``), the typed records they read
and write, and the errors callers catch.

Nothing outside this package talks to MongoDB, or names PyMongo or BSON.
"""
