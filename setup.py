"""Build hook: compiles the native k-quant library (native/) into quantdesk.kquant._kquant with cffi."""

from setuptools import setup

setup(cffi_modules=["native/build_kquant.py:ffibuilder"])
