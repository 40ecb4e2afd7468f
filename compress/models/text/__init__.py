"""Language models: text classifiers (MiniLM, DistilBERT, BERT-small, XLM-RoBERTa) and causal LMs (GPT-2)."""
