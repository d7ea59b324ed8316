import factory
from django.contrib.auth import get_user_model

from smileloop.clinics.enums import Role
from smileloop.clinics.models import Chain, Clinic, Staff


class ChainFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Chain

    name = factory.Sequence(lambda n: f"笑齿口腔{n}")


class ClinicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Clinic

    chain = factory.SubFactory(ChainFactory)
    code = factory.Sequence(lambda n: f"C{n:03d}")
    name = factory.Sequence(lambda n: f"门诊{n}")
    city = "上海"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pass-1234")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class StaffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Staff
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    chain = factory.SubFactory(ChainFactory)
    name = factory.Sequence(lambda n: f"员工{n}")
    role = Role.FRONT_DESK

    @factory.post_generation
    def clinics(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.clinics.set(extracted)
