"""Reader: model windows, the engines (ONNX Runtime, transformers), span decoding, the fitted confidence map.

May use: qa.ort, qa.schema. Not qa.index (its sibling floor). Used by: qa.chat, qa.lab, qa.cli.
"""
