"""Stand-in for SimpleITK where it is not installed (the GPU image of bench/device_check.sh).

iphbench imports SimpleITK at module level (NRRD, MetaImage and DICOM input, mask output), but
the benches read and write NIfTI only, through nibabel, and never call it. bench/device_check.sh
puts this folder on PYTHONPATH only when ``import SimpleITK`` fails; any use raises an ImportError
that says so. Never installed, never imported by the library itself.
"""


def __getattr__(name: str) -> object:
    raise ImportError(
        f"SimpleITK.{name}: SimpleITK is not installed here and bench/_stubs/SimpleITK only stands in "
        "for its import; install SimpleITK for NRRD, MetaImage or DICOM files"
    )
