from setuptools import find_packages, setup

setup(
    name="mpirl",
    version="0.1.0",
    description="MPI-native distributed reinforcement learning for HPC clusters",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["mpirl", "mpirl.*"]),
    install_requires=[
        "mpi4py>=4.0",
        "numpy>=1.24",
        "torch>=2.1",
        "h5py>=3.8",
        "gymnasium>=1.0",
        "tomli>=2.0; python_version<'3.11'",
        "tomli-w>=1.0",
    ],
    extras_require={
        # The MPI runtime from PyPI for workstations; on a cluster mpi4py uses the site MPI.
        "mpich": ["mpich"],
        "bench": ["matplotlib>=3.5"],
        # Pixel workloads: MinAtar (10x10 frames, numpy) and Atari through ale-py (it ships the ROMs; gymnasium's
        # AtariPreprocessing resizes with OpenCV).
        "minatar": ["minatar>=1.0.15"],
        "atari": ["ale-py>=0.9", "opencv-python-headless>=4.5"],
        # Continuous control: gymnasium's MuJoCo tasks (HalfCheetah-v5, Hopper-v5, Walker2d-v5); its renderer
        # imports imageio.
        "mujoco": ["mujoco>=3.1", "imageio>=2.14"],
        # The viewer for the run directory's tb/ event files (mpirl writes them without it).
        "tensorboard": ["tensorboard>=2.10"],
        "test": ["pytest>=7", "pytest-mpi>=0.6", "hypothesis>=6", "tensorboard>=2.10", "matplotlib>=3.5"],
    },
    entry_points={"console_scripts": ["mpirl=mpirl.cli:main"]},
)
