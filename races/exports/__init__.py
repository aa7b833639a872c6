"""
The race office's exports: a race's result and its odds history ("flucs") as CSV or XLSX files,
for the admin (admin.py) and the API (api.py). Reads are in selectors.py, the files are built
from them in datasets.py with django-import-export's resources, formulas escaped.
"""
