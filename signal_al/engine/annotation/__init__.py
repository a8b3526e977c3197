"""Who labels a round's selected items: the round's routing (:mod:`.annotate`), the annotators and the
CSV batch files (:mod:`.oracle`), and Label Studio files (:mod:`.labelstudio`)."""
