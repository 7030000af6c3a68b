"""Streaming and pushed feature data: events from Kinesis and from the ingest API, into both stores.

Owns the path an event takes after a client or a Kinesis shard hands it over: validation against
its stream source in the registry, the online update of every aggregation view over that source
(tiles in DynamoDB, exactly once per event id, recorded in the online store's journal in the same
transaction), and the micro-batched flush of the journal into the Delta event logs (and of pushed
rows into their views' Delta tables). Reads the registry, the online store and Delta; written to by
`POST /v1/ingest`, `hindsight.ingest`, `hindsight stream run` and push.
"""
