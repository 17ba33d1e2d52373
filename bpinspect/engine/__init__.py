"""The engine: blobs, the net graph built as Caffe builds it, and fillers."""
