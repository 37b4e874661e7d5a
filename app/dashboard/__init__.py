"""The dashboard's building blocks; the pages in app/views/ put them together.

    state.py        the runs folder, the shared job manager, session state set up once per session
    config_form.py  the sidebar that builds a TSSDConfig, with impossible combinations prevented
    form_fields.py  the fields it shows: their session-state keys, their bounds from validation.LIMITS
    form_distillation.py  its Distillation section: mode, windows, loss weights, the method's open choices
    reading.py      cheap, repeated reads of run folders (through tssd_viz.runs.folders): the runs table, progress
    live.py         one run's charts, redrawn every two seconds while it trains
    probe_batch.py  the run's probe batch, redrawn once a snapshot arrives
    inference.py    a trained network on one test image, for Inspect

The app trains nothing itself: runs are processes of the CLI started by `tssd_viz.jobs.queue`, and every
page only reads run folders. Every number drawn comes from the library's figures.
"""
