"""JSSL MRI reconstruction pipeline."""
