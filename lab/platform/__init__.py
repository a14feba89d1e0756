"""The emulated slice of the Azure platform that a lab's guests talk to.

Modules here run inside the lab's host ("fabric") container with Debian's Python and
only the standard library plus Werkzeug, so they must not import from the rest of
the ``lab`` package except :mod:`lab.platform` itself.
"""
