"""The spec's SQL expressions: parsing, what an expression reads and computes, compiling it."""
