"""Index: embedding, the local FAISS index and its folder, the vector cache, retrieval, the PostgreSQL store.

May use: qa.ingest, qa.ort, qa.schema. Not qa.reader (its sibling floor). Used by: qa.chat, qa.lab, qa.cli.
"""
