"""The sans-IO consensus core: events in, actions out (`consensus`), one round's state
machine (`round`), graded consensus (`gc`), BBA* (`bba`), message checks (`validate`) and the
log of what this node signed (`signed`)."""
