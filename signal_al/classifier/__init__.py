"""The text classifier retrained every round: its config section (:mod:`.config`), inference with the
head's input embedding (:mod:`.inference`), training (:mod:`.training`), fit-and-evaluate
(:mod:`.fit_eval`) and the pure metrics of a round (:mod:`.metrics`)."""
