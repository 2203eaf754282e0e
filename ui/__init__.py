"""ui: the web chat and HTTP API (Gradio). May use: qa.chat and below, never qa.lab; started by qa.cli."""
