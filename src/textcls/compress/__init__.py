"""Making models small and fast: augmentation and knowledge distillation."""
