"""dynnas supernets: what can be built — elastic layers, families, data, training, extraction."""
