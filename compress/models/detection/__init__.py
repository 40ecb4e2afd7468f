"""Object detection: YOLOv8n through ultralytics."""
