"""npegen host driver: run matmuls and quantized models on the co-processor."""
