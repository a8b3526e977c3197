"""Experiments on top of the engine: methods x seeds grids (:mod:`.grid`), reports and their statistics
(:mod:`.report`, :mod:`.endpoints`, :mod:`.stats`, :mod:`.raw_records`), generator checkpoint
comparison, the annotator check, the RL bench with its control rewards, and the offline models' checks
(:mod:`.doctor`)."""
