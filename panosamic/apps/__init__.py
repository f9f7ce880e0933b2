"""Applications built on the library (each needs its optional extra, e.g. ``panosamic[demo]``)."""
