"""证书照片: certificate photos on S3-compatible storage."""
