"""Invoicing: FatturaPA invoices (TD01) for paid orders and credit notes (TD04) for refunds."""
