"""One module per block. Adding a module here is all it takes to add a block."""
