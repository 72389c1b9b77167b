"""The templates a new install starts with (seeded by a migration; plain data)."""

STARTER_TEMPLATES = [
    {
        "name": "Newsletter",
        "channel": "email",
        "subject": "News from {{ organisation.name }}",
        "body_text": "Dear {{ recipient.salutation }},\n\n"
        "A short update from {{ organisation.name }} for you and the team at {{ practice.name }}.\n\n"
        "(Write the news here.)\n\n"
        "Questions, or a patient to refer? Reply to this email or call me.\n\n"
        "{{ liaison.name }}\nPhysician relations, {{ organisation.name }}",
    },
    {
        "name": "Quiz of the month",
        "channel": "email",
        "subject": "Three questions for {{ practice.name }}: {{ quiz.prize }}",
        "body_text": "Hello {{ recipient.first_name }},\n\n"
        "Three quick questions about our specialty. Answer them all correctly before "
        "{{ quiz.closes }} and you could win {{ quiz.prize }}.\n\n"
        "Your link: {{ links.quiz }}\n\n"
        "Thank you,\n{{ liaison.name }}, {{ organisation.name }}",
    },
    {
        "name": "Seminar invitation",
        "channel": "email",
        "subject": "You are invited: {{ event.name }}",
        "body_text": "Dear {{ recipient.salutation }},\n\n"
        "{{ physician.name }} invites you and your colleagues at {{ practice.name }} to "
        "{{ event.name }} on {{ event.when }}, {{ event.where }}.\n\n"
        "Will you join us? Tell us here: {{ links.rsvp }}\n\n"
        "{{ liaison.name }}, {{ organisation.name }}",
    },
    {
        "name": "Letter: introducing a new physician",
        "channel": "letter",
        "subject": "Introducing {{ physician.name }}",
        "body_text": "We are delighted to introduce {{ physician.name }}, {{ physician.specialty }}, who has "
        "joined {{ organisation.name }}.\n\n"
        "Patients from {{ practice.name }} can be seen within days. To refer, fax or call our "
        "referral line, or ask {{ liaison.name }} ({{ liaison.email }}).\n\n"
        "Thank you for the trust you place in us.",
    },
    {
        "name": "Letter: thank you for a first referral",
        "channel": "letter",
        "subject": "Thank you from {{ organisation.name }}",
        "body_text": "Thank you for choosing {{ organisation.name }} for your patient. We will keep "
        "{{ practice.name }} informed at every step, and send the consult note as soon as the "
        "patient has been seen.\n\n"
        "If anything could be easier, {{ liaison.name }} ({{ liaison.email }}) would like to hear it.",
    },
]
