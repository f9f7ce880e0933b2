"""``panosamic demo``: a Gradio page with a 360° viewer for one checkpoint.

* :mod:`~panosamic.apps.demo.cli` -- the subcommand (imports neither Gradio nor torch until run);
* :mod:`~panosamic.apps.demo.app` -- ``build_demo(model)`` (the ``gr.Blocks`` page) and ``launch_demo``;
* :mod:`~panosamic.apps.demo.backend` -- loading, upload checks, segmentation, pictures (no Gradio);
* :mod:`~panosamic.apps.demo.viewer` -- the vendored Pannellum viewer page and its images;
* :mod:`~panosamic.apps.demo.examples` -- the example panoramas.

Nothing is imported here, so that importing the package stays cheap.
"""
