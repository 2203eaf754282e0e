"""Ingest: sources (files, folders, web pages), their formats (PDF, Word, HTML) and chunking into passages.

May use: qa.schema. Used by: qa.index, qa.chat, qa.lab, qa.cli, ui.
"""
