"""The active-learning engine: the loop (the one place that knows the order of a round's steps) and
what it works with: the run folder (:mod:`.store`), the run's lazily loaded resources
(:mod:`.context`), selection, method names, the acquisition grid, tracking, who annotates
(:mod:`.annotation`) and the generator plug-in (:mod:`.generator`)."""
