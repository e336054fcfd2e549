"""Where languages align: pair metrics at every layer, the tidy tables, the layer selection, reading runs back,
predictors of transfer, and the midalign-analyze pipeline."""
