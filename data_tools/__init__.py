"""data_tools: benchmark data for hamnet (PySCF labeling, recipes, readers of public files)."""
