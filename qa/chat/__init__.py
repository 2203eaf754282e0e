"""Chat: the chatbot, follow-up questions, the per-session library of documents and the terminal chat.

May use: qa.reader, qa.index, qa.ingest, qa.ort, qa.schema. Used by: qa.lab, ui, qa.cli.
"""
