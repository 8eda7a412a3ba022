"""Off-chain market services: the optimal matcher (``matcher.py``) that platforms run to
assign open requests to listings before submitting ``market/fill`` transactions."""
