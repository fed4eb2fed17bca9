"""Private machinery of pinnacle_ray: what users must not import (Ray Train V2's habit).

Its modules sit in the lowest room beside :mod:`pinnacle_ray.errors`: they import nothing
of the package but ``errors`` and each other, and no room above is looked up from here.
Importing this package does nothing; each module is imported where it is used.
"""
