"""What the console and the REST API both do, written once: replies, thread actions (transfer,
resolve, take, labels, notes), contacts (merge, export, erase), accounts, reports, retention.

Services sit between the web layer and the pipeline: they take the repositories and pipeline parts
they need in their constructor, and the web reaches them through one AppKey (``SERVICES``). They
import the router, handlers and data layer, never the web."""
