"""Studies behind `echorand sim ...`: the experiments of the seed documents, run natively."""
