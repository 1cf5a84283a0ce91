"""Invoicing: FatturaPA invoices (TD01) for paid orders and credit notes (TD04) for refunds.

Owns the documents and their gap-free numbers (models.py, numbering.py), issuing them
(services.py, batch.py for many orders at once), reading them back (archive.py), the FatturaPA
XML (fatturapa.py, xsd.py) and their journey to the SdI (sdi_*.py, transmission.py,
webhook.py). Entry points: the subscribers to payments' events (subscribers.py, connected when
the app factory imports it), the SdI webhook `bp` (webhook.py), the transmission pass
(sdi_jobs.py) and `flask invoices` (cli.py).
"""
