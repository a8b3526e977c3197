"""The ground floor: what every other layer may use and that uses nothing of the project.

User errors and warnings (:mod:`.errors`), atomic file writes (:mod:`.io_utils`), typed configs from
YAML and ``--set`` (:mod:`.config_io`), devices and seeds (:mod:`.runtime`), progress bars
(:mod:`.progress`), whether a model folder is whole (:mod:`.model_files`), the names in a run folder
(:mod:`.run_layout`) and what ``state.json`` holds, with its one reader (:mod:`.run_state`).
"""
