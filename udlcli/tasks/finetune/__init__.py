"""udl finetune."""
