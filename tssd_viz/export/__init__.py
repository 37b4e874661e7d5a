"""Export: the trained student as a NIR graph (batch norm folded in), and a reader that runs it."""
